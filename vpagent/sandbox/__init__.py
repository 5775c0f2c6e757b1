"""The sandbox: an AST allow-list, then a separate, rlimited child process per program."""
