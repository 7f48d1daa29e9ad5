"""A small Flask service: a health check and a greeting."""

from flask import Flask

from app.routes import bp


def create_app(config=None):
    """Build the Flask application (the factory pattern keeps tests isolated)."""
    application = Flask(__name__)
    application.config.from_mapping(GREETING="Hello")
    if config:
        application.config.from_mapping(config)
    application.register_blueprint(bp)
    return application
