"""Generate the Python code of proto/workstream/v1/workitems.proto (grpcio-tools, a dev
dependency): `python -m grpcapi.codegen` writes grpcapi/gen/ (the server's) and
sdk/workstream_client/_gen/ (the SDK's, which must not need the server's package).

protoc writes absolute imports (`from workstream.v1 import workitems_pb2`); they are made
relative so each copy is a plain subpackage. tests/grpcapi/test_codegen.py regenerates into a
temporary folder and compares, so the committed code is the current proto's.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO = "workstream/v1/workitems.proto"
TARGETS = (ROOT / "grpcapi" / "gen", ROOT / "sdk" / "workstream_client" / "_gen")
MODULES = ("workitems_pb2.py", "workitems_pb2.pyi", "workitems_pb2_grpc.py")
HEADER = "# Generated from proto/{proto} by grpcio-tools (python -m grpcapi.codegen). Do not edit.\n"


def generate() -> dict[str, str]:
    """File name → text of the generated modules."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as out:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_ROOT / PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        generated = Path(out) / Path(PROTO).parent
        texts = {}
        for name in MODULES:
            text = (generated / name).read_text()
            text = re.sub(r"^from workstream\.v1 import ", "from . import ", text, flags=re.M)
            texts[name] = HEADER.format(proto=PROTO) + text
        texts["__init__.py"] = HEADER.format(proto=PROTO)
        return texts


def write(targets=TARGETS) -> None:
    texts = generate()
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (target / name).write_text(text)


if __name__ == "__main__":
    write()
    sys.stdout.write("".join(f"wrote {t.relative_to(ROOT)}/\n" for t in TARGETS))
