"""Learn the user's own classes from image-level labels: a CAM head (train), OICR streams (train --wsddn), and
proposals that improve from the boxes the reviewer accepted (improve)."""
