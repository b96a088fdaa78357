"""One module per `fugaku-sim` verb: `add_arguments(parser)` and `run(args) -> int`."""
