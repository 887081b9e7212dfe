"""`python -m gateway` and the `crm-gateway` command: the signals that stop or reload a serving
process are caught before anything slow is imported (gateway/signals.py), then the command
line runs."""

import sys

from gateway import signals


def main() -> int:
    signals.catch()
    from gateway.cli import main as command_line  # the slow imports: after the catch

    return command_line()


if __name__ == "__main__":
    sys.exit(main())
