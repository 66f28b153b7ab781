# ges-bot container image.
#
#   docker build -t ges-bot .
#   docker run --env-file ges-bot.env -v ges-bot-data:/data ges-bot            # Socket Mode, SQLite in /data
#   docker run --env-file ges-bot.env -p 3000:3000 ges-bot                     # HTTP mode: Slack → :3000/slack/events
#
# Several replicas need PostgreSQL (GES_BOT_DATABASE_URL=postgresql://…): see deploy/compose.yml.

# Both stages start from the same base image, pinned by digest (a tag can be moved to other
# contents). The digest is that of the official python:3.11.14-slim-bookworm image as public
# Dockerfiles pin it; it could not be pulled where this was written: check it with
# `docker buildx imagetools inspect python:3.11.14-slim-bookworm`, and bump tag and digest together
# (in both FROM lines) to pick up base-image security fixes.

# --- builder: the project and every dependency as wheels, so the runtime needs no compiler ----------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Dependencies first, exactly as pinned with their hashes (constraints.txt): a file that differs from
# the one the tests ran with fails the build. Its own layer: editing the code does not refetch them.
COPY constraints.txt ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r constraints.txt
# Only what the build reads (see .dockerignore): editing tests or docs does not bust this layer.
COPY pyproject.toml README.md ./
COPY ges_bot ./ges_bot
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GES_BOT_DATABASE_URL=sqlite:////data/ges-bot.db \
    GES_BOT_HTTP_HOST=0.0.0.0 \
    GES_BOT_HTTP_PORT=3000

# A fixed uid, so a bind-mounted /data can be chowned to it on the host.
RUN groupadd --system --gid 10001 gesbot \
    && useradd --system --uid 10001 --gid gesbot --home-dir /data --no-create-home --shell /usr/sbin/nologin gesbot \
    && mkdir /data \
    && chown gesbot:gesbot /data

# --no-index: everything was resolved in the builder; the runtime stage never reaches PyPI. The
# dependencies are checked against constraints.txt's hashes once more, then ges-bot goes on top.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,from=builder,source=/src/constraints.txt,target=/tmp/constraints.txt \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes -r /tmp/constraints.txt \
    && pip install --no-cache-dir --no-index --no-deps /wheels/ges_bot-*.whl

WORKDIR /data
# The SQLite database (single replica). Declared after the chown so a new volume is owned by gesbot.
VOLUME /data

# /healthz, /metrics, and in HTTP mode /slack/events. Socket Mode needs no inbound port.
EXPOSE 3000

# slim has no curl; the image's own Python asks /healthz (any error or non-2xx → unhealthy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GES_BOT_HTTP_PORT', '3000') + '/healthz', timeout=4)"]

# Numeric (= gesbot:gesbot), so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["ges-bot"]
CMD ["run"]
