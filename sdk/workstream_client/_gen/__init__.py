# Generated from proto/workstream/v1/workitems.proto by grpcio-tools (python -m grpcapi.codegen). Do not edit.
