"""`python -m muster` and the `muster` console script run the CLI.

The CLI is imported inside `main()`: a spawned decode worker re-imports the console script's
module, and it must not load the whole CLI (and the server behind it) into every worker.
"""


def main() -> None:
    from muster.cli import app

    app()


if __name__ == "__main__":
    main()
