"""The main job (`bash e2e/up.sh`): a working agentfleet on the local control plane. See driver.py."""
