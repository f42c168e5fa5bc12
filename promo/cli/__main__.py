"""`python -m promo.cli`, the same as the `promo` command."""

from promo.cli import main

if __name__ == "__main__":  # importing the module (the runtime-dependency check does) runs nothing
    main()
