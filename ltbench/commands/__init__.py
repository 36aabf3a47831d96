"""One module per ``ltbench`` subcommand; each defines a click command named ``command``."""
