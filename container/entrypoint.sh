#!/bin/sh
# The image's entrypoint (installed as /usr/local/bin/dummy-training-entrypoint), in the pattern of the official
# postgres and redis images:
#   IMAGE repack --model ...      -> dummy-training repack --model ...
#   IMAGE --version               -> dummy-training --version   (any first argument starting with '-')
#   IMAGE                         -> dummy-training --help      (the image's CMD)
#   IMAGE sh -ec '...' / python3  -> that program, as given     (kfp.local.DockerRunner and `docker run IMAGE cmd`
#                                                                pass a component's command as the container's
#                                                                arguments, not as its entrypoint)
# SageMaker's ContainerEntrypoint and a Kubernetes container's command replace this script altogether.
# The sub-commands are COMMANDS in dummy_training/cli.py (tests/container/test_dockerfile.py keeps them equal).
set -e
if [ "$#" -eq 0 ]; then
    set -- --help
fi
case "$1" in
    repack | compile | demo | sagemaker | ack | -*) set -- dummy-training "$@" ;;
esac
exec "$@"
