"""One module per command of the `latent-atlas` CLI, each with ``add_parser(sub)`` (its flags)
and ``run(args)`` (flags → config → one runner call → where the output went). Flags used by
several commands are built once, in ``flags``."""
