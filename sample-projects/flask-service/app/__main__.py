"""Run the development server: `python -m app`."""

from app import create_app

create_app().run(host="127.0.0.1", port=8000)
