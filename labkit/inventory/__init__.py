"""The inventory: Jinja template -> YAML with line marks -> validated model -> cross-checks."""
