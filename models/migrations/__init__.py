"""Migrations, written by ``tortoise makemigrations`` (``make migrations``) or by hand."""
