"""What counts as hyperparameters: a JSON object. One check for every place they come from (a file, S3, inline
JSON, or the archive's own root hyperparameters.json)."""

from __future__ import annotations

import json

from dummy_training.errors import InvalidInputError


def parse_hyperparameters(data: bytes, where: str) -> dict:
    """Hyperparameters must be a JSON object; returns it (raises InvalidInputError with one line otherwise)."""
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"hyperparameters from {where} are not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"hyperparameters from {where} are not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"hyperparameters from {where} must be a JSON object, got a JSON {type(value).__name__}"
        )
    return value
