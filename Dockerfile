# charlm: build and test in one stage, run from a slim one.
#
#   docker build -t charlm .
#   docker run -p 8080:8080 charlm                      # serves the shipped model
#   docker run --user "$(id -u):$(id -g)" -v "$PWD:/data" charlm \
#       charlm-train --corpus /data/text.txt --out /data/model
#
# There is no ENTRYPOINT, so any command given to `docker run` runs as is. The image runs
# as uid/gid 10001; --user lets the trainer write into a bind-mounted folder owned by you.

# --- stage 1: build and run the C test suite -----------------------------------------
FROM debian:bookworm-slim AS build

WORKDIR /src
# The package list is scripts/install-deps.sh's (ctest: the build tools and the libraries the
# C test suites link), copied first so that source edits keep this layer cached.
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh ctest && rm -rf /var/lib/apt/lists/*

# Only what the build and the tests read (docs/ included: tests check it against the
# code; package-lock.json: a test checks its packages run on bookworm's node), so editing
# the README or the deploy recipes does not invalidate the compile and test layers.
COPY CMakeLists.txt VERSION package-lock.json ./
COPY cmake/ cmake/
COPY docs/ docs/
COPY core/ core/
COPY trainer/ trainer/
COPY server/ server/
COPY bench/ bench/
COPY tests/ tests/
COPY static/ static/

RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)"
# The tests start real servers on loopback; a failing test fails the image build.
RUN cd build && OPENBLAS_NUM_THREADS=1 ctest --output-on-failure --no-tests=error -j2

# --- stage 2: runtime ------------------------------------------------------------------
FROM debian:bookworm-slim

# Only the shared libraries the two programs load (scripts/install-deps.sh runtime:
# libopenblas0-pthread, which provides libopenblas.so.0 through the alternatives system,
# libmicrohttpd12, libcjson1, and libgnutls30, already in the base image but listed to keep
# the intent explicit).
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && groupadd --system --gid 10001 charlm \
 && useradd --system --uid 10001 --gid charlm --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin charlm \
 && install -d -o charlm -g charlm /data

COPY --from=build /src/build/charlm-server /src/build/charlm-train /usr/local/bin/
COPY static/ /usr/share/charlm/static/
COPY artefacts/ /opt/charlm/artefacts/

# The LSTM is the default; CHARLM_MODELS adds every model folder inside it (the GPT in
# gpt/). A single model mounted over /opt/charlm/artefacts is served alone.
ENV CHARLM_MODEL=/opt/charlm/artefacts \
    CHARLM_MODELS=/opt/charlm/artefacts \
    CHARLM_STATIC_DIR=/usr/share/charlm/static \
    CHARLM_HOST=0.0.0.0 \
    CHARLM_PORT=8080

USER charlm
WORKDIR /data
EXPOSE 8080

# No curl in the image: bash's /dev/tcp speaks just enough HTTP/1.0 to read the status
# line. Change the port with CHARLM_PORT (not --port) and this check follows it.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CHARLM_PORT:-8080} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

CMD ["charlm-server"]
