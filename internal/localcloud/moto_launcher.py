# Starts moto_server with the local cloud's fixes for moto's gaps, applied before the first
# request so every region backend sees them:
#   - the default VPC is 127.1.0.0/16, so every private address moto hands out is a loopback
#     address (moto's own default, 172.31.0.0/16, must never be dialled);
#   - a launch without a subnet uses the zone's default subnet, as EC2 does (moto would invent
#     a random 10.x address and a public one);
#   - the instance-lifecycle filter of DescribeInstances works (moto raises NotImplementedError);
#   - DescribeSpotPriceHistory returns per-zone prices (moto returns one constant for all);
#   - RunInstances answers InsufficientInstanceCapacity for the pools `localcloud fault
#     capacity` dried up or limited (capacity-faults.json beside the prices: [[type, zone or
#     "", at most N instances per request], ...]); a limited pool launches up to MaxCount
#     within the limit, as EC2 does (moto launches MinCount).
#   - an instance profile reaches every instance of a launch (moto attaches it to the first).
#   - an instance launched on the spot market has its one-time spot instance request, as on
#     EC2 (moto makes none), whose status is marked-for-termination once `localcloud fault
#     interrupt` has posted a notice (spot-notices.json beside the prices: {instance id: time
#     of the action}) and instance-terminated-no-capacity once the instance is gone.
# RunInstances is idempotent per ClientToken, as on EC2, and a repeated
# CancelSpotInstanceRequests answers as EC2 does.
# And it counts the API requests it receives per caller (the access key id that signed them),
# service and action, for tests that bound how many calls a tool makes:
# GET /_ec2kit/api-calls?key=ACCESS_KEY_ID answers {"service:Action": requests, ...}. The path
# cannot be an AWS request to moto (S3 is versitygw's, and "_" starts no bucket name).
# Usage: python moto_launcher.py HOST PORT SPOT_PRICES_JSON
import io
import json
import os
import re
import sys
import threading
import time
from urllib.parse import parse_qs

import moto.ec2.models.vpcs as vpcs
from moto.ec2.models.instances import InstanceBackend
import moto.ec2.utils as ec2utils
from moto.ec2.exceptions import DefaultVpcAlreadyExists, EC2ClientError
from moto.ec2.models.spot_requests import SpotInstanceRequest, SpotRequestBackend
from moto.ec2.responses.spot_instances import SpotInstances
from moto.ec2.responses.instances import InstanceResponse
from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

host, port, prices_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(prices_path, encoding="utf-8") as f:
    SPOT = json.load(f)  # {"base": {type: on-demand USD/h}, "zones": {zone-letter: factor}, "default": USD/h}
CAPACITY_FAULTS = os.path.join(os.path.dirname(prices_path), "capacity-faults.json")
SPOT_NOTICES = os.path.join(os.path.dirname(prices_path), "spot-notices.json")


def create_default_vpc(self):
    if self.describe_vpcs(filters={"is-default": ["true"]}):
        raise DefaultVpcAlreadyExists
    vpc = self.create_vpc(cidr_block="127.1.0.0/16", is_default=True)
    for zone in self.describe_availability_zones():
        subnet = self.create_default_subnet(zone.name)
        subnet.map_public_ip_on_launch = False
    return vpc


vpcs.VPCBackend.create_default_vpc = create_default_vpc
_run_instances = InstanceBackend.run_instances


def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
    nics = kwargs.get("nics") or []
    if not kwargs.get("subnet_id") and not any("SubnetId" in n for n in nics):
        zone = kwargs.get("placement") or self.region_name + "a"
        subnet = self.get_default_subnets().get(zone)
        if subnet is not None:
            kwargs["subnet_id"] = subnet.id
    count = capacity(self, count, kwargs)
    return _run_instances(self, image_id, count, user_data, security_group_names, **kwargs)


REQUEST = threading.local()  # MaxCount of the request being served
_response_run_instances = InstanceResponse.run_instances


def response_run_instances(self):
    REQUEST.max_count = int(self._get_param("MaxCount", if_none="1"))
    return _response_run_instances(self)


InstanceResponse.run_instances = response_run_instances


def capacity(backend, count, kwargs):
    """How many instances to launch (count is MinCount): all, unless a fault limits the pool."""
    try:
        with open(CAPACITY_FAULTS, encoding="utf-8") as f:
            faults = json.load(f)
    except FileNotFoundError:
        return count
    itype = kwargs.get("instance_type") or "m1.small"
    subnet_id = kwargs.get("subnet_id") or next((n["SubnetId"] for n in kwargs.get("nics") or [] if "SubnetId" in n), None)
    zone = backend.get_subnet(subnet_id).availability_zone if subnet_id else kwargs.get("placement")
    for t, z, limit in faults:
        if t == itype and z in ("", zone):
            if count <= limit:
                return min(max(count, getattr(REQUEST, "max_count", count)), limit)
            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                f"We currently do not have sufficient {itype} capacity in the Availability Zone you requested ({zone}). "
                "Our system will be working on provisioning additional capacity. You can currently get "
                f"{itype} capacity by not specifying an Availability Zone in your request or choosing another zone.",
            )
    return count


InstanceBackend.run_instances = run_instances
_run_with_profile = InstanceBackend.run_instances


def run_instances_with_profile(self, image_id, count, user_data, security_group_names, **kwargs):
    reservation = _run_with_profile(self, image_id, count, user_data, security_group_names, **kwargs)
    name, arn = kwargs.get("iam_instance_profile_name"), kwargs.get("iam_instance_profile_arn")
    for instance in reservation.instances[1:]:  # the response handler attaches the first
        if name:
            self.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_name=name)
        elif arn:
            self.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_arn=arn)
    return reservation


InstanceBackend.run_instances = run_instances_with_profile
_run_with_spot_requests = InstanceBackend.run_instances


class LaunchedSpotRequest(SpotInstanceRequest):
    """The one-time spot request behind an instance RunInstances launched on the spot market."""

    __module__ = SpotInstanceRequest.__module__  # moto files its models by their module's name

    def __init__(self, backend, instance):
        self._launched = instance
        super().__init__(
            backend, ec2utils.random_spot_request_id(), price=None, image_id=instance.image_id,
            spot_instance_type="one-time", valid_from=None, valid_until=None, launch_group=None,
            availability_zone_group=None, key_name=instance.key_name, security_groups=[], user_data=None,
            instance_type=instance.instance_type, placement=None, kernel_id=None, ramdisk_id=None,
            monitoring_enabled=False, subnet_id=instance.subnet_id, tags={}, spot_fleet_id=None,
            instance_interruption_behaviour="terminate",
        )
        self.status_message = "Your spot request is fulfilled."

    def launch_instance(self):
        return self._launched


def run_instances_with_spot_requests(self, image_id, count, user_data, security_group_names, **kwargs):
    reservation = _run_with_spot_requests(self, image_id, count, user_data, security_group_names, **kwargs)
    if kwargs.get("instance_market_options"):
        for instance in reservation.instances:
            request = LaunchedSpotRequest(self, instance)
            self.spot_instance_requests[request.id] = request
            instance.spot_instance_request_id = request.id
    return reservation


InstanceBackend.run_instances = run_instances_with_spot_requests
_run_without_token = InstanceBackend.run_instances
CLIENT_TOKENS = {}  # (account, region, ClientToken) -> the reservation it launched
CLIENT_TOKENS_LOCK = threading.Lock()


def run_instances_once(self, image_id, count, user_data, security_group_names, **kwargs):
    """EC2 launches once per ClientToken, which the SDKs fill in: a request retried after its
    answer was lost gets the first launch back. moto launches again (a duplicate fleet)."""
    token = kwargs.get("client_token")
    if not token or token == "ABCDE":  # moto's stand-in when the request had none
        return _run_without_token(self, image_id, count, user_data, security_group_names, **kwargs)
    key = (self.account_id, self.region_name, token)
    with CLIENT_TOKENS_LOCK:  # a retry may arrive while the first attempt still runs
        if key not in CLIENT_TOKENS:
            CLIENT_TOKENS[key] = _run_without_token(self, image_id, count, user_data, security_group_names, **kwargs)
        return CLIENT_TOKENS[key]


InstanceBackend.run_instances = run_instances_once
_cancel_spot_requests = SpotRequestBackend.cancel_spot_instance_requests
CANCELLED_SPOT_REQUESTS = {}  # request id -> the request, once cancelled


def cancel_spot_instance_requests(self, request_ids):
    """EC2 answers a second cancel of a request (a retry whose first answer was lost) with the
    request, cancelled; moto fails it with a KeyError (HTTP 500), which no retry mends."""
    unknown = [r for r in request_ids if r not in self.spot_instance_requests and r not in CANCELLED_SPOT_REQUESTS]
    if unknown:
        raise EC2ClientError("InvalidSpotInstanceRequestID.NotFound", f"The spot instance request ID '{unknown[0]}' does not exist")
    live = [r for r in request_ids if r in self.spot_instance_requests]
    for request in _cancel_spot_requests(self, live):
        CANCELLED_SPOT_REQUESTS[request.id] = request
    return [CANCELLED_SPOT_REQUESTS[r] for r in request_ids]


SpotRequestBackend.cancel_spot_instance_requests = cancel_spot_instance_requests
_describe_spot_requests = SpotRequestBackend.describe_spot_instance_requests


def describe_spot_instance_requests(self, filters=None, spot_instance_ids=None):
    try:
        with open(SPOT_NOTICES, encoding="utf-8") as f:
            notices = json.load(f)
    except FileNotFoundError:
        notices = {}
    for request in self.spot_instance_requests.values():
        at = notices.get(getattr(request.instance, "id", None))
        if at is None:
            continue
        if request.instance.state == "running":
            request._status_code = "marked-for-termination"
            request.status_message = f"Your Spot Instance is marked to be terminated at {at}."
        elif request.instance.state in ("shutting-down", "terminated"):
            request.state = "closed"
            request._status_code = "instance-terminated-no-capacity"
            request.status_message = "Your Spot Instance was terminated because there is no Spot capacity available that matches your request."
    return _describe_spot_requests(self, filters, spot_instance_ids)


SpotRequestBackend.describe_spot_instance_requests = describe_spot_instance_requests
ec2utils.filter_dict_attribute_mapping["instance-lifecycle"] = "lifecycle"


def spot_price(instance_type, zone):
    base = SPOT["base"].get(instance_type, SPOT["default"])
    return "%.6f" % (base * SPOT["zones"].get(zone[-1], 0.4))


def describe_spot_price_history(self):
    types = self._get_param("InstanceTypes", [])
    offerings = self.ec2_backend.describe_spot_price_history(types, self._filters_from_querystring())
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return ActionResult({"SpotPriceHistory": [
        {
            "InstanceType": o["InstanceType"],
            "ProductDescription": "Linux/UNIX (Amazon VPC)",
            "SpotPrice": spot_price(o["InstanceType"], o["Location"]),
            "AvailabilityZone": o["Location"],
            "Timestamp": now,
        }
        for o in offerings
    ]})


SpotInstances.describe_spot_price_history = describe_spot_price_history

CALLS = {}  # access key id -> {"service:Action": requests}
CALLS_LOCK = threading.Lock()
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
_dispatch = DomainDispatcherApplication.__call__


def action_of(environ):
    """The API action of a request: its X-Amz-Target (JSON protocols) or its Action parameter
    (query protocols, in the URL or the form body, which is put back for moto to read)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else environ.get("REQUEST_METHOD", "") + " " + environ.get("PATH_INFO", "")


def counting_dispatch(self, environ, start_response):
    if environ.get("PATH_INFO") == "/_ec2kit/api-calls":
        key = parse_qs(environ.get("QUERY_STRING", "")).get("key", [""])[0]
        with CALLS_LOCK:
            body = json.dumps(CALLS.get(key, {})).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    signed = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if signed:
        name = signed.group(2) + ":" + action_of(environ)
        with CALLS_LOCK:
            calls = CALLS.setdefault(signed.group(1), {})
            calls[name] = calls.get(name, 0) + 1
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = counting_dispatch

from moto.server import main  # noqa: E402  (after the patches)

main(["-H", host, "-p", port])
