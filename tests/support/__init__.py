"""What tests share: emulators of every provider, a scripted fake adapter, Prefect run helpers,
and small fixtures. Tests import from here, never from conftest or from each other."""
