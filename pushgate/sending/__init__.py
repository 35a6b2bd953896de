"""Use cases: accept, dispatch and deliver notifications, seeing only domain/ and the ports."""
