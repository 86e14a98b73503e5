"""Open Inference Protocol over gRPC: the messages (generated from grpc_predict_v2.proto), the service's
method table, the tensor codecs between its messages and numpy, and its status codes.

Transport-free like the rest of `protocol`: the function runtime (functions/grpc_server.py) and the
activator's gRPC front (activator/grpc_front.py) both serve with these.
"""
