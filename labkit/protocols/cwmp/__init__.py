"""TR-069 (CWMP): the SOAP codec, the RPC values and the sans-IO ACS and CPE sessions."""
