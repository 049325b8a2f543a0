#!/usr/bin/env bash
# soak.sh: the soak of scripts/loadtest.sh: one redis-server, dispatcher and
# edge started once, then `herald-load soak`: CYCLES (10) cycles of CLIENTS
# (15000) clients in WORKERS (2) fresh worker processes that connect, receive
# one notification each and vanish abruptly (half by SIGKILL of their worker,
# half by TCP reset), then a last wave. SMALL=1: 3 cycles of 1000.
# The figures go to benchmarks/results/<time>-soak.md (OUT= to choose);
# HERALD_BIN=path soaks another herald binary (an older commit's).
exec "$(dirname "$0")/loadtest.sh" soak
