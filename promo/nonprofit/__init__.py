"""The nonprofit donation program (R-N*, R-V*), one module per aggregate, each the only
writer of its tables:

- program.py: the program's campaign and the refusal every part raises (no table);
- organisations.py: registration, review, standing and what it forbids (`organisations`);
- validation_codes.py: codes, their uses and the partners who verify them
  (`validation_codes`, `validation_code_uses`, `partners`);
- donations.py: requests, their cycles, items and licence keys (`donation_cycles`,
  `donation_requests`, `donation_items`, `donation_lines`);
- returns.py: returns of donated products (`donation_returns`);
- decisions.py: staff decisions on requests and on an organisation's standing (no table);
- records.py: what the console searches for (no table); pages.py: each page's one call.

The rules themselves, free of storage, are in promo/campaigns/donation_program.py."""
