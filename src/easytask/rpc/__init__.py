"""gRPC edge: generated code, conversions, servicers, auth."""
