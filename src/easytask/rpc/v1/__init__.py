"""Generated protobuf code (scripts/gen_protos); do not edit."""
