"""`python -m pocketgan` is the CLI (so `torchrun -m pocketgan distill ...` works)."""

from pocketgan.cli import main

if __name__ == "__main__":
    main()
