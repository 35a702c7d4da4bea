from quakealert.cli import main

raise SystemExit(main())
