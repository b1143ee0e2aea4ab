"""ML Metadata's gRPC service in front of ML Metadata's own store, for the kfp_cluster tier.

KFP 2.17's driver and launcher record executions and artifacts through MLMD's ``MetadataStoreService`` (gRPC,
``metadata-grpc-service.kubeflow:8080``). MLMD publishes no server program on PyPI, but the ``ml-metadata`` wheel
(1.17.1, CPython 3.11) ships the store itself, C++ (``metadata_store_extension.so``), whose methods take and return
serialized protos: the Python client's in-process mode calls them method by method. This module serves each
``MetadataStoreService`` method by handing the request's bytes to the store's method of the same name and the
answer's bytes back (no parsing here; an error keeps the store's status code and message), so what the driver and
the launcher talk to is MLMD's store, over MLMD's own service definition.

Run it with the Python of a venv holding ``ml-metadata==1.17.1`` (its protobuf and grpcio pins differ from the
project's; ``kfp_cluster.py`` uses ``$DUMMY_TRAINING_PEERS/mlmd-venv``):

    python mlmd_server.py --port PORT --sqlite FILE [--host 0.0.0.0]

It prints ``ready PORT`` once serving. ``python mlmd_server.py --dump HOST:PORT`` prints what a store holds (its
artifacts and executions, with their types, URIs, states and properties) as JSON, read through the service.

The three service methods the store does not export (GetParentContextsByContexts,
GetChildrenContextsByContexts, GetLineageGraph) answer UNIMPLEMENTED; KFP 2.17 calls none of them.
"""

from __future__ import annotations

import argparse
import sys
import threading
from concurrent import futures
from typing import Any


def serve(host: str, port: int, sqlite: str) -> None:
    import grpc
    from ml_metadata.metadata_store.pywrap.metadata_store_extension import metadata_store as cc
    from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = sqlite
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    migration = metadata_store_pb2.MigrationOptions()
    store = cc.CreateMetadataStore(config.SerializeToString(), migration.SerializeToString())
    lock = threading.Lock()  # one SQLite connection: one call at a time, as MLMD's server does per connection

    def handler(name: str) -> Any:
        method = getattr(cc, name, None)

        def call(request: bytes, context: grpc.ServicerContext) -> bytes:
            if method is None:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not in ml-metadata's store")
            with lock:
                response, message, code = method(store, request)
            if code != 0:
                status = next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.UNKNOWN)
                context.abort(status, message.decode("utf-8", "replace"))
            return bytes(response)

        return grpc.unary_unary_rpc_method_handler(call)  # no (de)serializers: the bytes pass through

    service = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
    handlers = {m.name: handler(m.name) for m in service.methods}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    print(f"ready {bound}", flush=True)
    server.wait_for_termination()


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(v.struct_value)
    return getattr(v, kind) if kind else None


def dump(target: str) -> dict[str, Any]:
    """Every artifact and execution of the store at ``target`` (HOST:PORT), through the gRPC service."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    host, port = target.rsplit(":", 1)
    store = metadata_store.MetadataStore(metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port)))
    atypes = {t.id: t.name for t in store.get_artifact_types()}
    etypes = {t.id: t.name for t in store.get_execution_types()}

    def props(message: Any) -> dict[str, Any]:
        return {k: _value(v) for k, v in message.custom_properties.items()}

    artifacts = [{"id": a.id, "type": atypes.get(a.type_id), "uri": a.uri, "name": a.name,
                  "state": metadata_store_pb2.Artifact.State.Name(a.state), "custom_properties": props(a)}
                 for a in store.get_artifacts()]
    ctypes = {t.id: t.name for t in store.get_context_types()}

    def runs(execution_id: int) -> list[str]:  # KFP files each execution under its run's context
        return [c.name for c in store.get_contexts_by_execution(execution_id)
                if ctypes.get(c.type_id) == "system.PipelineRun"]

    executions = [{"id": e.id, "type": etypes.get(e.type_id), "name": e.name,
                   "state": metadata_store_pb2.Execution.State.Name(e.last_known_state),
                   "runs": runs(e.id), "custom_properties": props(e)} for e in store.get_executions()]
    events = [{"artifact_id": ev.artifact_id, "execution_id": ev.execution_id,
               "type": metadata_store_pb2.Event.Type.Name(ev.type),
               "path": [s.key for s in ev.path.steps if s.HasField("key")]}
              for ev in store.get_events_by_execution_ids([e["id"] for e in executions])]
    return {"artifacts": artifacts, "executions": executions, "events": events}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sqlite", help="the store's SQLite file (created if missing)")
    parser.add_argument("--dump", metavar="HOST:PORT", help="print a running store's contents as JSON and exit")
    args = parser.parse_args(argv)
    if args.dump:
        import json

        print(json.dumps(dump(args.dump)))
        return 0
    if not args.sqlite:
        parser.error("--sqlite is required to serve")
    serve(args.host, args.port, args.sqlite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
