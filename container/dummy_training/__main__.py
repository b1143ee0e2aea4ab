from dummy_training.cli import main

raise SystemExit(main())
