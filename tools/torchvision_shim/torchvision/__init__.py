"""The few torchvision pieces pytorch/examples' dcgan/main.py uses with --dataset folder, for
bench/train.py: torchvision's wheels do not import beside torch 2.13.0. Each piece does what
torchvision's does for 8-bit RGB files (PIL decoding, PIL bilinear resize, the same tensor
layout and scaling); what differs is said where it differs."""
