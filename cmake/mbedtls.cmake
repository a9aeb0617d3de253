# Where Mbed TLS comes from (issue #17).
#
#   -DCERTMQ_MBEDTLS=system  the system's libmbedtls-dev, whatever its version (2.28 on Debian 12,
#                            3.6 on Debian 13)
#   -DCERTMQ_MBEDTLS=fetch   Debian trixie's Mbed TLS 3.6 source package, fetched at configure time
#                            with the ordinary apt client and built static with certmq's own
#                            config/mbedtls/certmq_mbedtls_config.h
#   -DCERTMQ_MBEDTLS=auto    system when it is 3.6 or newer, fetch otherwise
#
# The fetch uses a private apt state in the build tree (Dir::Etc::sourcelist,
# Dir::Etc::sourceparts, Dir::State::Lists, Dir::Cache): nothing of the system's apt setup
# changes. `apt-get source` checks the source against the archive's signed index. The mirror is
# the one the system's own apt sources name for Debian; -DCERTMQ_DEBIAN_MIRROR=URL overrides it.
# The built library is cached under CERTMQ_MBEDTLS_CACHE (default: in the build tree), keyed by
# the config header's content, so a re-configure neither refetches nor rebuilds.
#
# Sets MBED_INC (include directory, or empty for the system's), MBEDTLS_LIB, MBEDX509_LIB,
# MBEDCRYPTO_LIB (static archives when fetched) and CERTMQ_MBEDTLS_VERSION ("2.28.3", ...).

set(CERTMQ_MBEDTLS "system" CACHE STRING "Mbed TLS: system, fetch (Debian trixie's 3.6) or auto")
set_property(CACHE CERTMQ_MBEDTLS PROPERTY STRINGS system fetch auto)
set(CERTMQ_MBEDTLS_CACHE "${CMAKE_BINARY_DIR}/_mbedtls" CACHE PATH
    "Where a fetched Mbed TLS is unpacked and built")
set(CERTMQ_MBEDTLS_CONFIG "${CMAKE_SOURCE_DIR}/config/mbedtls/certmq_mbedtls_config.h")
if(NOT CERTMQ_MBEDTLS MATCHES "^(system|fetch|auto)$")
  message(FATAL_ERROR "CERTMQ_MBEDTLS=${CERTMQ_MBEDTLS}: use system, fetch or auto")
endif()

# MBEDTLS_VERSION_STRING from a header directory's mbedtls/build_info.h (3.x) or version.h (2.x).
function(certmq_mbedtls_version incdir out)
  set(v "")
  foreach(h build_info.h version.h)
    if(NOT v AND EXISTS "${incdir}/mbedtls/${h}")
      file(STRINGS "${incdir}/mbedtls/${h}" line REGEX "#define MBEDTLS_VERSION_STRING ")
      string(REGEX MATCH "\"([0-9.]+)\"" _ "${line}")
      set(v "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(${out} "${v}" PARENT_SCOPE)
endfunction()

set(MBED_INC "")
set(_mbed_mode "${CERTMQ_MBEDTLS}")
if(_mbed_mode STREQUAL "system" OR _mbed_mode STREQUAL "auto")
  find_path(MBEDTLS_SYS_INC NAMES mbedtls/ssl.h)
  find_library(MBEDTLS_SYS_LIB NAMES mbedtls)
  find_library(MBEDX509_SYS_LIB NAMES mbedx509)
  find_library(MBEDCRYPTO_SYS_LIB NAMES mbedcrypto)
  set(_sys_version "")
  if(MBEDTLS_SYS_INC)
    certmq_mbedtls_version("${MBEDTLS_SYS_INC}" _sys_version)
  endif()
  if(_mbed_mode STREQUAL "auto")
    if(_sys_version AND MBEDTLS_SYS_LIB AND NOT _sys_version VERSION_LESS 3.6)
      set(_mbed_mode system)
    else()
      set(_mbed_mode fetch)
    endif()
  elseif(NOT MBEDTLS_SYS_INC OR NOT MBEDTLS_SYS_LIB OR NOT MBEDX509_SYS_LIB
         OR NOT MBEDCRYPTO_SYS_LIB)
    message(FATAL_ERROR "certmq needs Mbed TLS: apt-get install libmbedtls-dev "
                        "(or configure with -DCERTMQ_MBEDTLS=fetch to build Debian trixie's 3.6)")
  endif()
endif()

if(_mbed_mode STREQUAL "system")
  set(MBEDTLS_LIB ${MBEDTLS_SYS_LIB})
  set(MBEDX509_LIB ${MBEDX509_SYS_LIB})
  set(MBEDCRYPTO_LIB ${MBEDCRYPTO_SYS_LIB})
  set(CERTMQ_MBEDTLS_VERSION "${_sys_version}")
  message(STATUS "Mbed TLS ${CERTMQ_MBEDTLS_VERSION} (system)")
  return()
endif()

# ---- fetch --------------------------------------------------------------------------------
file(SHA256 "${CERTMQ_MBEDTLS_CONFIG}" _cfg_hash)
set(_root "${CERTMQ_MBEDTLS_CACHE}")
set(_stamp "${_root}/built.stamp")
set(_want "trixie ${_cfg_hash} ${CMAKE_C_COMPILER}")
set(_have "")
if(EXISTS "${_stamp}")
  file(READ "${_stamp}" _have)
endif()

# The Debian mirror (and security mirror) the system's apt sources already use.
function(certmq_debian_mirrors out_main out_security)
  set(main "")
  set(sec "")
  file(GLOB parts /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
  foreach(f /etc/apt/sources.list ${parts})
    if(NOT EXISTS "${f}")
      continue()
    endif()
    file(STRINGS "${f}" lines)
    foreach(l ${lines})
      string(REGEX MATCHALL "[a-z+]+://[^] \t]+" uris "${l}")
      if(l MATCHES "^[ \t]*#")
        continue()
      endif()
      foreach(u ${uris})
        string(REGEX REPLACE "/+$" "" u "${u}")
        if(u MATCHES "/debian-security$" AND NOT sec)
          set(sec "${u}")
        elseif(u MATCHES "/debian$" AND NOT main)
          set(main "${u}")
        endif()
      endforeach()
    endforeach()
  endforeach()
  set(${out_main} "${main}" PARENT_SCOPE)
  set(${out_security} "${sec}" PARENT_SCOPE)
endfunction()

set(_src_dir "${_root}/src")
file(GLOB _unpacked LIST_DIRECTORIES true "${_src_dir}/mbedtls-3.*")
if(NOT _unpacked)
  find_program(APT_GET apt-get)
  find_program(DPKG_SOURCE dpkg-source)
  if(NOT APT_GET OR NOT DPKG_SOURCE)
    message(FATAL_ERROR "CERTMQ_MBEDTLS=${CERTMQ_MBEDTLS}: fetching Mbed TLS 3.6 needs apt-get and "
                        "dpkg-source: apt-get install dpkg-dev")
  endif()
  set(CERTMQ_DEBIAN_MIRROR "" CACHE STRING "Debian mirror for the Mbed TLS source (default: the system's)")
  if(CERTMQ_DEBIAN_MIRROR)
    set(_mirror "${CERTMQ_DEBIAN_MIRROR}")
    set(_secmirror "")
  else()
    certmq_debian_mirrors(_mirror _secmirror)
  endif()
  if(NOT _mirror)
    message(FATAL_ERROR "CERTMQ_MBEDTLS=${CERTMQ_MBEDTLS}: no Debian mirror found in /etc/apt/sources.list(.d); "
                        "name one with -DCERTMQ_DEBIAN_MIRROR=URL")
  endif()
  set(_apt "${_root}/apt")
  file(REMOVE_RECURSE "${_apt}" "${_src_dir}")
  file(MAKE_DIRECTORY "${_apt}/parts" "${_apt}/lists/partial" "${_apt}/cache/archives/partial" "${_src_dir}")
  set(_kr /usr/share/keyrings/debian-archive-keyring.gpg)
  set(_list "deb-src [signed-by=${_kr}] ${_mirror} trixie main\n")
  if(_secmirror)
    string(APPEND _list "deb-src [signed-by=${_kr}] ${_secmirror} trixie-security main\n")
  endif()
  file(WRITE "${_apt}/sources.list" "${_list}")
  set(_aptopts -q -o "Dir::Etc::sourcelist=${_apt}/sources.list" -o "Dir::Etc::sourceparts=${_apt}/parts"
      -o "Dir::State::Lists=${_apt}/lists" -o "Dir::Cache=${_apt}/cache" -o "APT::Get::List-Cleanup=0"
      -o "Acquire::Retries=2")
  message(STATUS "Mbed TLS: fetching Debian trixie's source package from ${_mirror}")
  execute_process(COMMAND ${APT_GET} ${_aptopts} update
                  RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT r EQUAL 0 OR e MATCHES "(^|\n)(E|W): ")
    message(FATAL_ERROR "CERTMQ_MBEDTLS=${CERTMQ_MBEDTLS}: cannot read Debian trixie's source index "
                        "from ${_mirror} (offline?):\n${e}\nInstall libmbedtls-dev 3.6 (Debian 13) "
                        "and use -DCERTMQ_MBEDTLS=system, or build against Debian 12's 2.28 with "
                        "-DCERTMQ_MBEDTLS=system.")
  endif()
  execute_process(COMMAND ${APT_GET} ${_aptopts} source mbedtls
                  WORKING_DIRECTORY "${_src_dir}" RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  file(GLOB _unpacked LIST_DIRECTORIES true "${_src_dir}/mbedtls-3.*")
  if(NOT r EQUAL 0 OR NOT _unpacked)
    message(FATAL_ERROR "CERTMQ_MBEDTLS=${CERTMQ_MBEDTLS}: 'apt-get source mbedtls' (trixie) failed:\n${o}\n${e}")
  endif()
endif()
list(GET _unpacked 0 _mbed_src)
certmq_mbedtls_version("${_mbed_src}/include" CERTMQ_MBEDTLS_VERSION)
if(CERTMQ_MBEDTLS_VERSION VERSION_LESS 3.6)
  message(FATAL_ERROR "${_mbed_src}: Mbed TLS ${CERTMQ_MBEDTLS_VERSION}, certmq needs 3.6")
endif()

set(_libdir "${_mbed_src}/library")
if(NOT _have STREQUAL _want OR NOT EXISTS "${_libdir}/libmbedcrypto.a")
  message(STATUS "Mbed TLS ${CERTMQ_MBEDTLS_VERSION}: building static libraries with ${CERTMQ_MBEDTLS_CONFIG}")
  find_program(MAKE_PROGRAM NAMES make gmake REQUIRED)
  execute_process(COMMAND ${MAKE_PROGRAM} -C "${_libdir}" clean OUTPUT_QUIET ERROR_QUIET)
  cmake_host_system_information(RESULT _ncpu QUERY NUMBER_OF_LOGICAL_CORES)
  execute_process(
    COMMAND ${MAKE_PROGRAM} -C "${_libdir}" -j${_ncpu} static "CC=${CMAKE_C_COMPILER}"
            "CFLAGS=-O2 -g -fPIC -DMBEDTLS_CONFIG_FILE=\\\"${CERTMQ_MBEDTLS_CONFIG}\\\""
    RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT r EQUAL 0)
    message(FATAL_ERROR "building Mbed TLS ${CERTMQ_MBEDTLS_VERSION} failed:\n${o}\n${e}")
  endif()
  file(WRITE "${_stamp}" "${_want}")
endif()

set(MBED_INC "${_mbed_src}/include")
set(MBEDTLS_LIB "${_libdir}/libmbedtls.a")
set(MBEDX509_LIB "${_libdir}/libmbedx509.a")
set(MBEDCRYPTO_LIB "${_libdir}/libmbedcrypto.a")
# Everything that includes an Mbed TLS header sees the library's own configuration.
include_directories(BEFORE "${MBED_INC}")
add_compile_definitions("MBEDTLS_CONFIG_FILE=\"${CERTMQ_MBEDTLS_CONFIG}\"")
message(STATUS "Mbed TLS ${CERTMQ_MBEDTLS_VERSION} (Debian trixie source, static, ${_mbed_src})")
