"""Foundation: what travels over MQTT (topics, chunk headers, command/reply envelopes, live-frame format) and the
one broker link. No numpy, no OpenCV.
"""
