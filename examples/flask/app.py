"""The Flask app of OpenReplay's Elasticsearch guide, WITHOUT its logging filter.

The guide adds an OpenReplayFilter that writes [openReplaySession.id=N] into
every log message. This app has no such code: replaylink, started in front of
it (`replaylink run -- python3 app.py`), reads the session of each request,
captures what the app prints and ships it to Elasticsearch in the shape
OpenReplay searches for.

Two changes from the guide, both so it can be tried on its own:
- no custom @app.errorhandler: Flask's default handling logs the full
  traceback to stderr ("Exception on /api/cart [GET]" and the stack) and
  answers 500, which is what a real backend's unexpected error looks like;
- CORS for the frontend page, which is served from another origin.
"""

import logging
import os

from flask import Flask, request

app = Flask(__name__)

# Configure the root logger, as in the guide (no filter, no session code).
logging.basicConfig(level=logging.INFO)
logger = logging.getLogger()

# Origins allowed to call this API from a browser, comma-separated ("*": any).
ALLOWED_ORIGINS = [o.strip() for o in os.environ.get("ALLOWED_ORIGINS", "*").split(",") if o.strip()]


@app.after_request
def cors(response):
    # The app allows only the headers it needs itself. replaylink adds the
    # session headers a browser asks for (openReplaySession.id,
    # X-OpenReplay-SessionToken) to the preflight answer on its way back, so
    # this list does not have to know about OpenReplay either.
    origin = request.headers.get("Origin")
    if origin and ("*" in ALLOWED_ORIGINS or origin in ALLOWED_ORIGINS):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


@app.route("/api/endpoint")
def api_endpoint():
    # Your logic here
    logger.info("Endpoint accessed")
    return "Success", 200


@app.route("/api/cart")
def api_cart():
    # A bug: the cart id is read from an empty dict. Flask logs the traceback
    # and answers 500; replaylink ties that traceback to the user's session.
    cart = {}
    return {"cart": cart["cart_id"]}


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
