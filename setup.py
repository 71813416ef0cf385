"""Build script: setuptools drives the build; pyproject.toml holds the metadata."""

from setuptools import setup

setup()
