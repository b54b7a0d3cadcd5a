"""Commands of this group register themselves on qwenkit.cli.app.app."""
