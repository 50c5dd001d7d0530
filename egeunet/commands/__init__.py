"""One module per `egeunet` command: HELP, add_arguments(parser), run(args) -> int."""
