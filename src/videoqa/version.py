"""videoqa's version, in a module of its own: every layer may read it without importing the
package's face (``videoqa/__init__.py``), which stands above them all."""

__version__ = "0.1.0"
