"""The committed generated code (grpcapi/gen/, sdk/workstream_client/_gen/) is what grpcio-tools
makes of the current proto/workstream/v1/workitems.proto: regenerated here and compared."""

from __future__ import annotations

import google.protobuf
import grpc

from grpcapi import codegen
from tests.test_requirements import pins

ROOT = codegen.ROOT


def test_generated_code_is_current(tmp_path):
    targets = (tmp_path / "server", tmp_path / "sdk")
    codegen.write(targets)
    for committed, fresh in zip(codegen.TARGETS, targets, strict=True):
        names = sorted(p.name for p in fresh.iterdir())
        assert names == sorted(p.name for p in committed.iterdir() if p.suffix in (".py", ".pyi")), committed
        for name in names:
            assert (committed / name).read_text() == (fresh / name).read_text(), (
                f"{committed / name} is not what `python -m grpcapi.codegen` makes of {codegen.PROTO}: run it"
            )


def test_generated_imports_are_relative():
    text = (codegen.TARGETS[0] / "workitems_pb2_grpc.py").read_text()
    assert "from . import workitems_pb2" in text and "from workstream.v1" not in text


def test_runtime_is_the_pinned_one():
    """The generated code checks the runtime's version at import; the pins are what runs here."""
    runtime = pins(ROOT / "requirements.txt")
    assert grpc.__version__ == runtime["grpcio"]
    assert google.protobuf.__version__ == runtime["protobuf"]
    assert pins(ROOT / "requirements-dev.txt")["grpcio-tools"] == runtime["grpcio"]
