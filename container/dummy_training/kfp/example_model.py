"""A small, deterministic example model.tar.gz, shaped like a real pretrained model (weights, config, tokenizer).

Used by ``dummy-training demo`` and the tests. By default the archive has NO root hyperparameters.json (the
step must inject one); with ``with_hyperparameters=True`` it carries its own (the step must preserve it).
Same arguments, same bytes: fixed seed, fixed mtimes, no owner names, gzip header without a timestamp.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from pathlib import Path
from typing import Any

from dummy_training import contract

#: The hyperparameters the demo injects (a typical fine-tuning set).
EXAMPLE_HYPERPARAMETERS: dict[str, Any] = {
    "epochs": 3,
    "learning_rate": 5e-05,
    "per_device_train_batch_size": 8,
    "warmup_ratio": 0.1,
    "model_name": "dummy-bert-tiny",
}
#: What an archive that already carries its own hyperparameters.json has (differs from the example above).
OWN_HYPERPARAMETERS: dict[str, Any] = {"epochs": 1, "learning_rate": 0.001, "note": "shipped inside the archive"}

MTIME = 1_700_000_000  # 2023-11-14: fixed, so the archive is reproducible
SEED = 20240601


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def example_members(with_hyperparameters: bool = False, weights_kib: int = 256) -> list[tuple[str, bytes]]:
    """(archive name, content) of every file of the example model, in archive order."""
    rng = random.Random(SEED)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(995)]
    config = {
        "architectures": ["BertForSequenceClassification"],
        "hidden_size": 128,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": len(vocab),
        "model_type": "bert",
    }
    members = [
        ("config.json", _json_bytes(config)),
        ("model.safetensors", rng.randbytes(weights_kib * 1024)),
        ("pytorch_model.bin", rng.randbytes(weights_kib * 512)),
        ("tokenizer.json", _json_bytes({"version": "1.0", "model": {"type": "WordPiece",
                                                                     "vocab": {t: i for i, t in enumerate(vocab)}}})),
        ("tokenizer_config.json", _json_bytes({"do_lower_case": True, "model_max_length": 512})),
        ("special_tokens_map.json", _json_bytes({"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"})),
        ("vocab.txt", ("\n".join(vocab) + "\n").encode()),
        ("code/inference.py", b"def model_fn(model_dir):\n    return model_dir\n"),
    ]
    if with_hyperparameters:
        members.append((contract.HYPERPARAMETERS_FILENAME, _json_bytes(OWN_HYPERPARAMETERS)))
    return members


def write_example_model(path: str | Path, with_hyperparameters: bool = False, weights_kib: int = 256) -> Path:
    """Write the example model.tar.gz to ``path`` (a file path, or a directory to hold model.tar.gz)."""
    dest = Path(path)
    if dest.is_dir():
        dest = dest / contract.MODEL_FILENAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs_done: set[str] = set()
        for name, data in example_members(with_hyperparameters, weights_kib):
            parent = name.rpartition("/")[0]
            if parent and parent not in dirs_done:
                dirs_done.add(parent)
                info = tarfile.TarInfo(parent)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, MTIME
            tar.addfile(info, io.BytesIO(data))
    dest.write_bytes(gzip.compress(buf.getvalue(), compresslevel=6, mtime=0))
    return dest


def write_example_hyperparameters(path: str | Path, hyperparameters: dict[str, Any] | None = None) -> Path:
    """Write hyperparameters.json to ``path`` (a file path, or a directory to hold it)."""
    dest = Path(path)
    if dest.is_dir():
        dest = dest / contract.HYPERPARAMETERS_FILENAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(_json_bytes(EXAMPLE_HYPERPARAMETERS if hyperparameters is None else hyperparameters))
    return dest
