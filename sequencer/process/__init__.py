"""What is done: recipes, flows and lots — their fields, checks and loaders.

The models (``recipes``) import no loader; the loaders (``recipe_fields``,
``recipe_check``, ``lots``, ``recipe_files``) read YAML into them. May import
``sequencer.states`` only (and the standard library, pydantic, yaml).
"""
