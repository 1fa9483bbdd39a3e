"""``python -m catlight``: the same as the ``catlight`` console script."""

from catlight.cli import main

if __name__ == "__main__":
    main()
