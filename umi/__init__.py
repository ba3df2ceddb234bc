"""umi-serve: production serving for the alpha-UMi multi-LLM tool-use agent.

The shared package. ``umi.format`` holds the byte-exact alpha-UMi wire format
(tool docs, turns, templates, parsers, GLPFT samples); ``umi.cli`` is the ``umi`` command.
"""

__version__ = "0.1.0"
