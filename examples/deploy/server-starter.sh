#!/bin/sh
# Server::Starter's start_server in front of feersum-ts: deploys that refuse
# no connection. start_server (cpanm Server::Starter, or Debian's
# libserver-starter-perl) binds the sockets once and keeps them; each
# generation of the runner gets them as inherited descriptors, named in
# SERVER_STARTER_PORT, so the runner's own --listen is not needed.
# Run it from the application's directory (/srv/myapp):
#   sh server-starter.sh
# Deploy: start_server starts a new generation on the same sockets and, once
# that has stayed up for --interval seconds, sends the old one SIGTERM, which
# stops accepting, finishes its requests and exits.
#   kill -HUP "$(cat /run/myapp/start_server.pid)"
set -e

# --interval 5: the new generation must stay up this long before the old one
# is stopped -- longer than the app takes to load, so that code which does
# not load never replaces working code (the runner exits 1 at once; the old
# generation serves on while start_server tries the new one again).
# No --pid-file for the runner: the old generation still holds it when the
# new one starts; start_server's own pid file is the one to signal.
exec start_server \
    --port 0.0.0.0:8080 --path /run/myapp/app.sock --interval 5 \
    --pid-file /run/myapp/start_server.pid --status-file /run/myapp/start_server.status -- \
    node_modules/.bin/feersum-ts --pre-fork=4 \
    --access-log /var/log/myapp/access.log --error-log /var/log/myapp/error.log app.js
