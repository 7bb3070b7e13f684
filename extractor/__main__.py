"""``python -m extractor`` is the ``twelvetwenty`` command."""

from extractor.cli import main

raise SystemExit(main())
