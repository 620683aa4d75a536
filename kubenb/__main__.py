"""``python -m kubenb``: the same as the ``kubenb`` command."""

from kubenb.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
