"""The test and benchmark harness: every real server the tiers start, and the small helpers they
share, defined once.

- ``ports``: free ports and port probes; ``stats``: percentiles; ``procs``: process runners (one
  child ended at teardown, and the demo's pid-file records that outlive the driver).
- ``installers``: the binaries and packages the real parts need, installed when missing.
- ``redis``, ``prometheus``, ``milvus``: a private redis-server, Prometheus, Milvus Lite.
- ``llama_server``: llama.cpp's server with a Qwen2.5-Coder GGUF (the demo and the CPU model bench).
- ``cluster``, ``nodes``, ``operator``: the e2e control plane (e2e/cluster/cluster.sh), its kwok nodes, the
  operator as a subprocess and GPU node pools of one test.
- ``autoscale``, ``keda``, ``image``, ``neighbours``: simulated replicas behind pods, KEDA, a
  container of a rendered pod, other projects' CRDs.

Fixtures stay in the conftests (and ``operator``'s, which e2e modules bind by name); they and the
benches import the servers from here.
"""
