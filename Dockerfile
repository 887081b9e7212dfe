# crm-gateway in a container: one worker per container (scale with replicas), as a non-root
# user, listening on 0.0.0.0:8080. The config is deploy/config.yaml, which reads everything
# site-specific from the environment (README, "Deploying").
#   docker build -t crm-gateway .
#   docker run -p 8080:8080 -e GATEWAY_API_KEYS=... -e ZENDESK_URL=... -e ZENDESK_OAUTH_TOKEN=... crm-gateway

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
COPY mappings/ mappings/
# The gateway's wheel and those of its dependencies; the final image installs only these.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin crm-gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels crm-gateway && rm -rf /wheels
COPY deploy/config.yaml /etc/crm-gateway/config.yaml
ENV GATEWAY_CONFIG=/etc/crm-gateway/config.yaml \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_WORKERS=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['GATEWAY_PORT'] + '/healthz', timeout=2)"]
# The gateway is PID 1 (exec form): SIGTERM reaches it, and it drains before it exits.
STOPSIGNAL SIGTERM
CMD ["crm-gateway", "serve"]
