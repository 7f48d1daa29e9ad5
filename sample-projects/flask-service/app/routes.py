"""HTTP routes of the service."""

from flask import Blueprint, current_app, jsonify

bp = Blueprint("service", __name__)

MAX_NAME_LENGTH = 64


@bp.get("/health")
def health():
    """Liveness probe for load balancers and orchestrators."""
    return jsonify(status="ok")


@bp.get("/greet/<name>")
def greet(name):
    """Greet someone by name; overly long names are rejected."""
    if len(name) > MAX_NAME_LENGTH:
        return jsonify(error=f"name longer than {MAX_NAME_LENGTH} characters"), 400
    greeting = current_app.config["GREETING"]
    return jsonify(message=f"{greeting}, {name}!")


@bp.get("/version")
def version():
    """The running version, taken from the environment of the deployment."""
    return jsonify(version=current_app.config.get("VERSION", "dev"))
