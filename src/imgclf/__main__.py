"""``python -m imgclf`` (also how ``torchrun -m imgclf train ...`` starts each process)."""

from imgclf.cli import main

if __name__ == "__main__":
    main()
