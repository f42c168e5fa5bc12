"""`python -m promo.cli`, the same as the `promo` command."""

from promo.cli import main

main()
