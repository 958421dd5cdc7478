"""``python -m imtrans`` runs the CLI (also what ``torchrun -m imtrans`` uses)."""

from imtrans.cli import main

if __name__ == "__main__":
    main()
