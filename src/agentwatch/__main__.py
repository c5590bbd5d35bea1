from agentwatch.cli import main

raise SystemExit(main())
