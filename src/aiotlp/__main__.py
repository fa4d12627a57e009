"""``python -m aiotlp`` is the ``aiotlp`` command."""

from .cli import main

raise SystemExit(main())
