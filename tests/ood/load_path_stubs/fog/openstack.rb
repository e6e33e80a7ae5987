# frozen_string_literal: true

# STAND-IN (test load path only): ood_core >= 0.26 requires 'fog/openstack' at load time for
# its OpenStack adapter, which the kit does not use; the gem cannot be installed here.
module Fog
  module OpenStack
  end
end
