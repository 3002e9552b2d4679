#!/bin/sh
# Asterisk's start in compose.yaml: write the users whose secrets come from the environment
# (.env), then run Asterisk in the foreground as the user asterisk. Asterisk reads no
# environment variables in its configuration files, so the secrets become files here, in the
# container's own /etc/asterisk (mode 0640, asterisk's group), never in the repository.
set -eu
: "${VERBATIM_ARI_PASSWORD:?set VERBATIM_ARI_PASSWORD in .env}"
: "${VERBATIM_AMI_SECRET:?set VERBATIM_AMI_SECRET in .env}"
: "${PHONE_201_PASSWORD:?set PHONE_201_PASSWORD in .env}"
: "${PHONE_202_PASSWORD:?set PHONE_202_PASSWORD in .env}"
umask 027
cd /etc/asterisk
printf '[verbatim]\ntype = user\nread_only = no\npassword_format = plain\npassword = %s\n' \
  "$VERBATIM_ARI_PASSWORD" > verbatim_ari_user.conf
printf '[verbatim]\nsecret = %s\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = reporting\nwrite = reporting\n' \
  "$VERBATIM_AMI_SECRET" > verbatim_ami_user.conf
printf '[201]\ntype = auth\nauth_type = userpass\nusername = 201\npassword = %s\n\n[202]\ntype = auth\nauth_type = userpass\nusername = 202\npassword = %s\n' \
  "$PHONE_201_PASSWORD" "$PHONE_202_PASSWORD" > verbatim_phone_auth.conf
chgrp asterisk verbatim_ari_user.conf verbatim_ami_user.conf verbatim_phone_auth.conf
exec /usr/sbin/asterisk -f -U asterisk -G asterisk -vvv
